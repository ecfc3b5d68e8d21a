"""Stand-in for CoreClaw's ``sdk_pb2_grpc.py``: client stubs of the ``coresdk`` services.

Method paths follow ``proto/sdk.proto`` in github.com/Core-Claw/coreclaw-cli (``UpsertData``
is a guess, see ``sdk_pb2``). Imported only by ``sdk.py``, which Runyard never imports.
"""

from __future__ import annotations

import grpc
import sdk_pb2
from google.protobuf import empty_pb2


class ParameterStub:
    def __init__(self, channel: grpc.Channel) -> None:
        self.GetInputJSONString = channel.unary_unary(
            "/coresdk.Parameter/GetInputJSONString",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=sdk_pb2.InputJSONStringResponse.FromString,
        )


class ResultStub:
    def __init__(self, channel: grpc.Channel) -> None:
        self.SetTableHeader = channel.unary_unary(
            "/coresdk.Result/SetTableHeader",
            request_serializer=sdk_pb2.TableHeader.SerializeToString,
            response_deserializer=sdk_pb2.Response.FromString,
        )
        self.PushData = channel.unary_unary(
            "/coresdk.Result/PushData",
            request_serializer=sdk_pb2.Data.SerializeToString,
            response_deserializer=sdk_pb2.Response.FromString,
        )
        self.UpsertData = channel.unary_unary(
            "/coresdk.Result/UpsertData",
            request_serializer=sdk_pb2.UpsertData.SerializeToString,
            response_deserializer=sdk_pb2.Response.FromString,
        )


class LogStub:
    def __init__(self, channel: grpc.Channel) -> None:
        self.Debug = channel.unary_unary(
            "/coresdk.Log/Debug",
            request_serializer=sdk_pb2.LogBody.SerializeToString,
            response_deserializer=sdk_pb2.Response.FromString,
        )
        self.Info = channel.unary_unary(
            "/coresdk.Log/Info",
            request_serializer=sdk_pb2.LogBody.SerializeToString,
            response_deserializer=sdk_pb2.Response.FromString,
        )
        self.Warn = channel.unary_unary(
            "/coresdk.Log/Warn",
            request_serializer=sdk_pb2.LogBody.SerializeToString,
            response_deserializer=sdk_pb2.Response.FromString,
        )
        self.Error = channel.unary_unary(
            "/coresdk.Log/Error",
            request_serializer=sdk_pb2.LogBody.SerializeToString,
            response_deserializer=sdk_pb2.Response.FromString,
        )
