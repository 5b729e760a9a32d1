"""The results floor: what a fit holds and computes without inference or output."""
