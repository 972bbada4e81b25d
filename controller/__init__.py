"""ioinctl: the ioin-fleet controller (pushes hooks to many agents, shows what comes back)."""
