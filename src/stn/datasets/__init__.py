"""Datasets: the MNIST source, distortions of it, and the prepared arrays every stage reads."""
