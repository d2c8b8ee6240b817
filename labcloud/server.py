"""``LabCloudServer``: the lab cloud's API served by waitress in a daemon thread.

    with LabCloudServer(Cloud(CloudConfig(time_scale=0))) as server:
        requests.post(f"{server.auth_url}/auth/tokens", json=...)
"""
from __future__ import annotations

import os
import threading

import waitress
from waitress import wasyncore

from labcloud.api import create_app
from labcloud.model import Cloud


class LabCloudServer:
    """Serves ``cloud`` on ``host:port`` (0: a free port). ``stop()`` stops serving; the
    cloud stays the caller's to close."""

    def __init__(self, cloud: Cloud, host: str = "127.0.0.1", port: int = 0, threads: int = 8):
        self.cloud = cloud
        self._server = waitress.create_server(create_app(cloud), host=host, port=port,
                                              threads=threads, ident="labcloud")
        shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        self.url = f"http://{shown}:{self._server.effective_port}"
        self.auth_url = f"{self.url}/identity/v3"
        self._thread = threading.Thread(target=self._server.run, name="labcloud-http",
                                        daemon=True)

    def start(self) -> LabCloudServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            # Close every socket from the serving thread itself: its loop then ends. Not with
            # trigger.pull_trigger(thunk): the loop may run the thunk (closing the trigger)
            # before pull_trigger writes its wake-up byte to the then closed (or reused) fd.
            # The loop runs thunks under trigger.lock, so holding it closes that window.
            trigger = self._server.trigger
            with trigger.lock:
                trigger.thunks.append(lambda: wasyncore.close_all(self._server._map))
                os.write(trigger.trigger, b"x")
            self._thread.join(10)
        else:
            self._server.close()
        self._server.task_dispatcher.shutdown()

    def __enter__(self) -> LabCloudServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
