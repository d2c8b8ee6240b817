"""Agent bridge: the orchestrator's transport to VMs over Salt, and a private Salt lab."""
