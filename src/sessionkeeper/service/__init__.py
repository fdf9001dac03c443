"""What runs on top of the Store: one chat turn (``chat``), the OpenAI-compatible model
client (``llm``) and the maintenance scheduler (``scheduler``: ghost purge and prune on a
timer, one runner per job across replicas). The set-wide deletes themselves are Store
operations (``delete_ghost_sessions``, ``prune_old_sessions``)."""
