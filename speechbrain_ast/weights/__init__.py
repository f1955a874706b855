"""Weight import: DeiT (ImageNet) initialisation and the published AST
checkpoints (the reference ``.pth`` files and transformers' folders) read
into an AST lobe and head."""
