from services.analytics.store.tables import metadata
from services.kit.migrations import run_env

run_env(metadata)
