"""Model code. Names only logical axes; the mesh mapping lives in visprior_jax.parallel.rules."""
