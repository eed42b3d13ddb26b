"""One overlay at a time: gather evidence, reconcile it with the options, apply rules."""
