"""What the benchmarks on data larger than memory share (``big_parquet.py``, ``big_glmm.py``):
Parquet files of a million rows written one at a time, and a process's resident memory."""
import os
import resource

import numpy as np

ROWS_PER_FILE = 1_000_000


def peak_rss_mb():
    """This process's peak resident memory (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb():
    """This process's resident memory now (MB)."""
    import psutil
    return psutil.Process().memory_info().rss / 2.0 ** 20


def write_files(folder, rows, columns_of, seed=0, row_group_size=None):
    """Parquet files of ``ROWS_PER_FILE`` rows under ``folder``, written one at a time, file ``i``
    from ``columns_of(np.random.default_rng(seed + 1 + i), n)`` (a dict of columns); a file
    already there with its number of rows is kept. Returns the files' paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    os.makedirs(folder, exist_ok=True)
    n_files = -(-rows // ROWS_PER_FILE)
    paths = []
    for i in range(n_files):
        path = os.path.join(folder, "part-%04d.parquet" % i)
        paths.append(path)
        n = min(ROWS_PER_FILE, rows - i * ROWS_PER_FILE)
        if os.path.exists(path) and pq.ParquetFile(path).metadata.num_rows == n:
            continue
        table = pa.table(columns_of(np.random.default_rng(seed + 1 + i), n))
        pq.write_table(table, path, row_group_size=row_group_size)
    return paths
