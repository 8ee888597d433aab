# Sizes, decided here alone (included before the canonical config sorts them by name). With
# `sizes`, each run's files and each size's comparison sit in a folder of the size's name (SIZE,
# a path prefix), the report labels runs by it (SIZE_LABEL), and figures and tables show the
# sizes in the order the config lists them (SIZE_NAMES). Without, the model section is the one
# size, named "" in the tables (attnscore.stats.size_label) and in no path or label: a config
# without sizes keeps its runs' paths.
SIZE_NAMES = list(config.get("sizes", {})) or [""]
SIZED = SIZE_NAMES != [""]
SIZE = "{size}/" if SIZED else ""
SIZE_LABEL = {"size": "{size}"} if SIZED else {}


def size_of(wildcards):
    """A job's size: its name, or "" (the model section) where its paths name none."""
    return wildcards.get("size", "")
