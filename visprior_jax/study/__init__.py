"""The study: grids of runs (pretrain -> align -> SFT -> eval) and the results store that joins their records."""
