from services.kit.migrations import run_env
from services.members.store.tables import metadata

run_env(metadata)
