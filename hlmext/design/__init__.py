"""The design floor: row layout, covariance structures, cross-product statistics, chunked and Dask passes."""
