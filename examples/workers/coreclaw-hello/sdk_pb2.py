"""Stand-in for CoreClaw's protoc-generated ``sdk_pb2.py``: the messages of ``coresdk``.

The real file embeds a serialized ``sdk.proto``; this one builds the same descriptor in code
(message and field names as in the ``proto/sdk.proto`` that CoreClaw publishes in
github.com/Core-Claw/coreclaw-cli). ``UpsertData`` is not in that proto; its shape is a guess
that mirrors ``Data``. Imported only by ``sdk.py``, which Runyard never imports.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
_INT32 = descriptor_pb2.FieldDescriptorProto.TYPE_INT32
_STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE

# message name → [(field name, number, type, label, message type name or "")]
_MESSAGES: dict[str, list[tuple[str, int, int, int, str]]] = {
    "InputJSONStringResponse": [
        ("code", 1, _INT32, _OPTIONAL, ""),
        ("jsonString", 2, _STRING, _OPTIONAL, ""),
    ],
    "TableHeader": [("headers", 1, _MESSAGE, _REPEATED, ".coresdk.TableHeaderItem")],
    "TableHeaderItem": [
        ("label", 1, _STRING, _OPTIONAL, ""),
        ("key", 2, _STRING, _OPTIONAL, ""),
        ("format", 3, _STRING, _OPTIONAL, ""),
    ],
    "Data": [("jsonString", 1, _STRING, _OPTIONAL, "")],
    "UpsertData": [
        ("jsonString", 1, _STRING, _OPTIONAL, ""),
        ("uniqueKey", 2, _STRING, _OPTIONAL, ""),
    ],
    "LogBody": [("log", 1, _STRING, _OPTIONAL, "")],
    "Response": [
        ("code", 1, _INT32, _OPTIONAL, ""),
        ("message", 2, _STRING, _OPTIONAL, ""),
    ],
}


def _file_descriptor() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(name="sdk.proto", package="coresdk", syntax="proto3")
    for message_name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=message_name)
        for name, number, kind, label, type_name in fields:
            field = message.field.add(name=name, number=number, type=kind, label=label)
            field.json_name = name
            if type_name:  # an empty type_name still counts as set, and is then invalid
                field.type_name = type_name
    return descriptor_pool.Default().AddSerializedFile(proto.SerializeToString())


DESCRIPTOR = _file_descriptor()

InputJSONStringResponse = message_factory.GetMessageClass(
    DESCRIPTOR.message_types_by_name["InputJSONStringResponse"]
)
TableHeader = message_factory.GetMessageClass(DESCRIPTOR.message_types_by_name["TableHeader"])
TableHeaderItem = message_factory.GetMessageClass(
    DESCRIPTOR.message_types_by_name["TableHeaderItem"]
)
Data = message_factory.GetMessageClass(DESCRIPTOR.message_types_by_name["Data"])
UpsertData = message_factory.GetMessageClass(DESCRIPTOR.message_types_by_name["UpsertData"])
LogBody = message_factory.GetMessageClass(DESCRIPTOR.message_types_by_name["LogBody"])
Response = message_factory.GetMessageClass(DESCRIPTOR.message_types_by_name["Response"])
