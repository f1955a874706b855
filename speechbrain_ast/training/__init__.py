"""What the recipes train with, beyond SpeechBrain's own blocks:
augmentation, the paper's optimiser and schedule, losses and metrics,
labels, checkpoints safe against kills, DDP evaluation, ensembles."""
