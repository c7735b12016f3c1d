"""``toolchest-wes events --listen PORT``: receive a server's webhooks and print them."""

from __future__ import annotations

import json
import threading
from typing import Any

import click

from toolchest_wes.client.webhooks import EventListener

__all__ = ["events"]


@click.command()
@click.option(
    "--listen", "port", type=int, required=True, help="Port to receive webhooks on (0: any)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--secret",
    envvar="TOOLCHEST_WES_WEBHOOK_SECRET",
    help="Verify each delivery's signature with this secret and answer 401 to those that "
    "fail (the server retries them).  [env: TOOLCHEST_WES_WEBHOOK_SECRET]",
)
def events(port: int, host: str, secret: str | None) -> None:
    """Receive webhook events and print each as one JSON line, until interrupted.

    Give the server http://HOST:PORT/ as a run's toolchest_wes.notify_url tag or as an
    operator's --webhook. The first line printed names the port.
    """
    lock = threading.Lock()

    def printed(event: dict[str, Any], _verified: bool) -> None:
        with lock:
            click.echo(json.dumps(event, separators=(",", ":")))

    listener = EventListener(port, printed, secret=secret, host=host)
    click.echo(json.dumps({"listening": f"http://{host}:{listener.port}/"}))
    try:
        listener.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
