"""The archive: posts, their versions, search, fetch log, source state and the outbox."""
