"""VQA benchmarks: ``base`` (the contract and HF-layout readers), one module per category group, and
``registry`` (every benchmark by name, the paper's 16, category and overall means)."""
