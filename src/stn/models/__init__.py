"""Models: localization nets, transform families, the classifier and the builder."""
