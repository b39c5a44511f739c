"""Run by Feast's own Python (its virtual environment, never ours): `feast apply` on a repository, then
`get_historical_features` for a spine, written as Parquet. The import tests compare featurehouse's
training set with this output row by row.

    python feast_reference.py REPO_DIR SPINE.parquet FEATURES(comma-separated) OUT.parquet
"""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from feast import FeatureStore


def main() -> None:
    repo, spine, features, out = Path(sys.argv[1]).resolve(), *map(os.path.abspath, sys.argv[2:3]), \
        sys.argv[3].split(","), os.path.abspath(sys.argv[4])
    os.chdir(repo)  # Feast reads a FileSource's relative path from where it runs: the repository, as in its docs
    feast = Path(sys.executable).parent / "feast"
    subprocess.run([str(feast), "--chdir", str(repo), "apply"], check=True, stdout=subprocess.DEVNULL)
    store = FeatureStore(repo_path=str(repo))
    entity_df = pd.read_parquet(spine)
    job = store.get_historical_features(entity_df=entity_df, features=features, full_feature_names=True)
    job.to_df().to_parquet(out)


if __name__ == "__main__":
    main()
