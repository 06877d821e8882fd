"""Registering uploads: the one path every door takes (the gateway's routes, object-store notifications,
search's generation cache, the CLI) from "a tenant asks to register this source" to a `videos.uploaded`
event: validation and source admission (`registration`), per-request delivery and idempotency that holds
across replicas (`intake`, `idempotency`), and following uploads to their outcome (`watch`)."""
