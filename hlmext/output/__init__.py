"""The output floor: Stata-like tables, lme4/Stata code, plots."""
