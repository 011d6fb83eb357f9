"""The embedded broker: kombu's filesystem transport, with messages written atomically.

kombu creates a message file and then writes into it; a worker polling the folder can take the
file in between and read it empty, and the task is lost. Here a message is written under a name
no reader looks at, then renamed into place in one step.
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        temporary = os.path.join(self.data_folder_out, f".tmp-{name}")
        try:
            with open(temporary, "wb") as out:
                out.write(dumps(payload).encode())
            os.replace(temporary, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
