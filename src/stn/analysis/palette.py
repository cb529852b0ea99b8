"""One colour per variant, grouped so that a figure reads at a glance: the controls (no
transformer) in greys, the conventional STNs in shades of one blue, every idea its own hue.

The colours come from colour-blind-safe library palettes: the greys and blues of matplotlib's
`tableau-colorblind10` style (with one darker blue), and for the ideas the hues of its `petroff10`
sequence (Petroff 2021, chosen to stay apart under colour-vision deficiencies) other than its blue
and greys, plus black. For the distorted study's twelve variants, any two colours stay at least 18
apart in CIELAB under simulated deuteranopia, protanopia and tritanopia (Machado et al. 2009).
Within a group, colours go by first appearance in the list given, so figures that pass the
variants in the study's order give a variant the same colour.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import matplotlib
import matplotlib.colors as mcolors

Group = Literal["control", "conventional", "idea"]

PALETTES: dict[Group, tuple[str, ...]] = {
    "control": ("#595959", "#898989", "#ababab", "#cfcfcf"),  # tableau-colorblind10 greys
    "conventional": ("#5f9ed1", "#00466b", "#006ba4", "#a2c8ec"),  # its blues and a darker one
    # petroff10's orange, red, purple, brown, dark orange, khaki, cyan; okabe_ito's black, then
    # its green and pink (these two close to the greys for deuteranopes, so only for a 9th idea).
    "idea": ("#ffa90e", "#bd1f01", "#832db6", "#a96b59", "#e76300", "#b9ac70", "#92dadd", "#000000")
    + ("#009e73", "#cc79a7"),
}
LINESTYLES: dict[Group, str] = {"control": "--", "conventional": "-", "idea": "-"}
CONVENTIONAL = ("stn-conv", "stn-coordconv")  # the STN as published, with plain or CoordConv layers


def group_of(variant: str) -> Group:
    """The variant's group, from its name: `cnn*` controls, `stn-conv*`/`stn-coordconv*` the
    conventional STN (activation and classifier variations included), anything else an idea."""
    if variant == "cnn" or variant.startswith("cnn-"):
        return "control"
    if variant in CONVENTIONAL or variant.startswith(tuple(f"{v}-" for v in CONVENTIONAL)):
        return "conventional"
    return "idea"


def variant_colors(variants: Iterable[str]) -> dict[str, str]:
    """Hex colour per variant, all distinct; a group with more variants than its palette has
    borrows unused tab20 colours (distinct, though no longer colour-blind-safe)."""
    used = {c for palette in PALETTES.values() for c in palette}
    spare = iter([c for c in map(mcolors.to_hex, matplotlib.color_sequences["tab20"]) if c not in used])
    taken: dict[Group, int] = {"control": 0, "conventional": 0, "idea": 0}
    colors = {}
    for v in dict.fromkeys(variants):
        g = group_of(v)
        colors[v] = PALETTES[g][taken[g]] if taken[g] < len(PALETTES[g]) else next(spare)
        taken[g] += 1
    return colors
