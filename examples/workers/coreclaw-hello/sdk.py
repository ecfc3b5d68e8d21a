"""Stand-in for CoreClaw's bundled Python SDK (the ``sdk.py`` of their worker template).

CoreClaw ships this file, with ``sdk_pb2.py`` and ``sdk_pb2_grpc.py``, inside every Python
worker: a gRPC client of the platform runtime at the fixed address 127.0.0.1:20086. This is a
faithful re-creation of that interface, not their code, so that this package looks exactly like
one uploaded to CoreClaw.

Runyard must never import it: on Runyard, ``from sdk import CoreSDK`` resolves to Runyard's own
module. If this file is imported anyway, it fails at once without ``grpcio`` and ``protobuf``
(which Runyard does not install for this worker), and with them it dials 127.0.0.1:20086.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import sdk_pb2
import sdk_pb2_grpc
from google.protobuf import empty_pb2

RUNTIME_ADDRESS = "127.0.0.1:20086"


class CoreSDK:
    _channel = grpc.insecure_channel(RUNTIME_ADDRESS)

    class _ParameterService:
        def __init__(self, channel: grpc.Channel) -> None:
            self.stub = sdk_pb2_grpc.ParameterStub(channel)

        def get_input_json_str(self) -> str:
            response = self.stub.GetInputJSONString(empty_pb2.Empty())
            return str(response.jsonString)

        def get_input_json_dict(self) -> dict[str, Any]:
            json_str = self.get_input_json_str()
            return json.loads(json_str) if json_str else {}

    class _ResultService:
        def __init__(self, channel: grpc.Channel) -> None:
            self.stub = sdk_pb2_grpc.ResultStub(channel)

        def set_table_header(self, headers: Sequence[Mapping[str, str]]) -> Any:
            # Each header is {"label", "key", "format"}; format is text, integer, boolean,
            # array or object.
            items = [sdk_pb2.TableHeaderItem(**header) for header in headers]
            return self.stub.SetTableHeader(sdk_pb2.TableHeader(headers=items))

        def push_data(self, data: dict[str, Any] | str) -> Any:
            # CoreClaw's docs pass either a dict or an already-encoded JSON object string.
            json_str = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            return self.stub.PushData(sdk_pb2.Data(jsonString=json_str))

        def upsert_data(self, data: dict[str, Any] | str, unique_key: str) -> Any:
            json_str = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            body = sdk_pb2.UpsertData(jsonString=json_str, uniqueKey=unique_key)
            return self.stub.UpsertData(body)

    class _LogService:
        def __init__(self, channel: grpc.Channel) -> None:
            self.stub = sdk_pb2_grpc.LogStub(channel)

        def debug(self, log: str) -> Any:
            return self.stub.Debug(sdk_pb2.LogBody(log=log))

        def info(self, log: str) -> Any:
            return self.stub.Info(sdk_pb2.LogBody(log=log))

        def warn(self, log: str) -> Any:
            return self.stub.Warn(sdk_pb2.LogBody(log=log))

        def error(self, log: str) -> Any:
            return self.stub.Error(sdk_pb2.LogBody(log=log))

    Parameter = _ParameterService(_channel)
    Result = _ResultService(_channel)
    Log = _LogService(_channel)
