"""How ``r2u serve`` runs: address, limits and the workers beside it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ready2unlearn.config import check


@dataclass
class ServiceConfig:
    """Settings of the deletion service.

    Attributes:
        ledger: The ledger database (must exist and be bound to a model: ``r2u request add --checkpoint``).
        host: Address to bind; the loopback by default, so nothing outside this machine can reach it until
            an operator puts it behind a TLS proxy on purpose.
        port: TCP port.
        data_dir: Overrides the data directory recorded in the bound checkpoint (validating submissions).
        workers: ``r2u request process --watch`` workers started beside the server (0: none; processing
            then runs when an operator triggers it).
        worker_args: Extra arguments for each worker (``--method ga --stop forget_acc:chance ...``).
        poll: Seconds between a worker's looks at an empty queue.
        max_body_bytes: Larger request bodies are refused with 413 before they are read.
        log_dir: Folder of the workers' logs (default: ``<store>/service``).
    """

    ledger: str
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: str | None = None
    workers: int = 0
    worker_args: list[str] = field(default_factory=list)
    poll: float = 1.0
    max_body_bytes: int = 65536
    log_dir: str | None = None

    def __post_init__(self) -> None:
        check(0 <= self.port <= 65535, f"port must be in 0..65535, got {self.port}")
        check(0 <= self.workers <= 16, f"workers must be in 0..16, got {self.workers}")
        check(self.poll > 0, f"poll must be positive, got {self.poll}")
        check(1024 <= self.max_body_bytes <= 16 * 2**20, "max_body_bytes must be in 1 KiB..16 MiB")
