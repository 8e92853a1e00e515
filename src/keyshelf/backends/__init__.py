"""Storage backends: one module per backend, each implementing ``base.Backend`` primitives."""
