"""What the device agent raises when it is used wrongly or cannot own its outbox."""

from __future__ import annotations


class AgentError(RuntimeError):
    """The agent was used out of order (e.g. started twice)."""


class AgentBusyError(AgentError):
    """Another running agent (this or another process) owns this thing's outbox."""


class FaultTooLargeError(ValueError):
    """The serialised fault report exceeds the contract's 16 KiB."""
