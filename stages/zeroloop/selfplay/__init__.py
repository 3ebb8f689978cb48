"""The self-play stage: many games at once, batched search, training rows out."""
