"""The multi-node cluster: head service, node agents, auth, jobs and the command line."""
