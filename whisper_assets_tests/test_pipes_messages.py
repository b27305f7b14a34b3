import json
import time

from dagster_pipes import PipesDefaultMessageWriter

from whisper_assets.defs.compute import WholeLineMessageReader


class Handler:
    def __init__(self):
        self.messages, self.failures = [], []

    def handle_message(self, message):
        self.messages.append(message)

    def report_pipes_framework_exception(self, origin, exc_info):
        self.failures.append(exc_info)


def test_a_message_written_in_pieces_is_read_whole():
    handler = Handler()
    message = {"__dagster_pipes_version": "0.1", "method": "log", "params": {"message": "x" * 20_000}}
    line = json.dumps(message) + "\n"
    with (
        WholeLineMessageReader().read_messages(handler) as params,
        open(params[PipesDefaultMessageWriter.FILE_PATH_KEY], "a", encoding="utf-8") as stream,
    ):
        for start in range(0, len(line), 7_000):  # as a long write reaches the file: in chunks
            stream.write(line[start : start + 7_000])
            stream.flush()
            time.sleep(0.05)
    assert handler.failures == [] and handler.messages == [message]
