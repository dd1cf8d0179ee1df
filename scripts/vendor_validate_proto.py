"""Write proto/buf/validate/validate.proto from the protovalidate package installed here.

The schema registry that publishes buf/validate/validate.proto is not reachable from where
Studyhall is built, but the protovalidate wheel (pinned in constraints.txt) embeds the
file's descriptor. This prints that descriptor back as .proto source, so buf and protoc
resolve `import "buf/validate/validate.proto"` from the repository. Comments are not in the
descriptor and do not survive; the schema does, field for field and option for option.

    .venv/bin/python scripts/vendor_validate_proto.py [--check]
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import protovalidate
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FieldDescriptorProto,
    FileDescriptorProto,
)

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "proto" / "buf" / "validate" / "validate.proto"
SOURCE = Path(protovalidate.__file__).parent / "_gen" / "buf" / "validate" / "validate_pb.py"

HEADER = """\
// Copyright 2023-2026 Buf Technologies, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//      http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

// Vendored from the protovalidate {version} Python package by
// scripts/vendor_validate_proto.py; do not edit.
"""

SCALARS = {
    FieldDescriptorProto.TYPE_DOUBLE: "double",
    FieldDescriptorProto.TYPE_FLOAT: "float",
    FieldDescriptorProto.TYPE_INT64: "int64",
    FieldDescriptorProto.TYPE_UINT64: "uint64",
    FieldDescriptorProto.TYPE_INT32: "int32",
    FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    FieldDescriptorProto.TYPE_BOOL: "bool",
    FieldDescriptorProto.TYPE_STRING: "string",
    FieldDescriptorProto.TYPE_BYTES: "bytes",
    FieldDescriptorProto.TYPE_UINT32: "uint32",
    FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    FieldDescriptorProto.TYPE_SINT32: "sint32",
    FieldDescriptorProto.TYPE_SINT64: "sint64",
}
LABELS = {
    FieldDescriptorProto.LABEL_OPTIONAL: "optional",
    FieldDescriptorProto.LABEL_REPEATED: "repeated",
    FieldDescriptorProto.LABEL_REQUIRED: "required",
}


def embedded_descriptor() -> bytes:
    """The serialized FileDescriptorProto the generated module registers."""
    for node in ast.walk(ast.parse(SOURCE.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "file_desc":
            value = node.args[0]
            if isinstance(value, ast.Constant) and isinstance(value.value, bytes):
                return value.value
    raise SystemExit(f"no embedded descriptor found in {SOURCE}")


class Printer:
    def __init__(self, file: FileDescriptorProto) -> None:
        self.file = file
        self.pool = descriptor_pool.DescriptorPool()
        for dependency in (descriptor_pb2, *_well_known()):
            proto = FileDescriptorProto()
            dependency.DESCRIPTOR.CopyToProto(proto)
            self.pool.Add(proto)
        self.pool.Add(file)
        self.lines: list[str] = []

    def render(self, version: str) -> str:
        self.lines = [HEADER.format(version=version).rstrip("\n"), ""]
        self.lines.append('syntax = "proto2";')
        self.lines.append("")
        self.lines.append(f"package {self.file.package};")
        self.lines.append("")
        for dependency in self.file.dependency:
            self.lines.append(f'import "{dependency}";')
        self.lines.append("")
        for name, value in self._options("google.protobuf.FileOptions", self.file.options):
            self.lines.append(f"option {name} = {value};")
        for extension in self._group_extensions(self.file.extension):
            self.lines.append("")
            self._extend(extension[0].extendee, extension, "")
        for enum in self.file.enum_type:
            self.lines.append("")
            self._enum(enum, "")
        for message in self.file.message_type:
            self.lines.append("")
            self._message(message, "", self.file.package)
        return "\n".join(self.lines) + "\n"

    def _group_extensions(self, extensions: Any) -> list[list[FieldDescriptorProto]]:
        groups: dict[str, list[FieldDescriptorProto]] = {}
        for extension in extensions:
            groups.setdefault(extension.extendee, []).append(extension)
        return list(groups.values())

    def _extend(self, extendee: str, fields: list[FieldDescriptorProto], indent: str) -> None:
        self.lines.append(f"{indent}extend {extendee.lstrip('.')} {{")
        for field in fields:
            self._field(field, indent + "  ", in_oneof=False)
        self.lines.append(f"{indent}}}")

    def _enum(self, enum: EnumDescriptorProto, indent: str) -> None:
        self.lines.append(f"{indent}enum {enum.name} {{")
        for name, value in self._options("google.protobuf.EnumOptions", enum.options):
            self.lines.append(f"{indent}  option {name} = {value};")
        for item in enum.value:
            options = self._inline_options("google.protobuf.EnumValueOptions", item.options)
            self.lines.append(f"{indent}  {item.name} = {item.number}{options};")
        for reserved in enum.reserved_range:
            self.lines.append(f"{indent}  reserved {_range(reserved.start, reserved.end, 0)};")
        for name in enum.reserved_name:
            self.lines.append(f'{indent}  reserved "{name}";')
        self.lines.append(f"{indent}}}")

    def _message(self, message: DescriptorProto, indent: str, scope: str) -> None:
        full = f"{scope}.{message.name}"
        self.lines.append(f"{indent}message {message.name} {{")
        inner = indent + "  "
        for name, value in self._options("google.protobuf.MessageOptions", message.options):
            self.lines.append(f"{inner}option {name} = {value};")
        for enum in message.enum_type:
            self._enum(enum, inner)
        for nested in message.nested_type:
            if nested.options.map_entry:
                continue
            self._message(nested, inner, full)
        written: set[int] = set()
        for field in message.field:
            if field.HasField("oneof_index"):
                if field.oneof_index in written:
                    continue
                written.add(field.oneof_index)
                oneof = message.oneof_decl[field.oneof_index]
                self.lines.append(f"{inner}oneof {oneof.name} {{")
                for name, value in self._options("google.protobuf.OneofOptions", oneof.options):
                    self.lines.append(f"{inner}  option {name} = {value};")
                for member in message.field:
                    if member.HasField("oneof_index") and member.oneof_index == field.oneof_index:
                        self._field(member, inner + "  ", in_oneof=True)
                self.lines.append(f"{inner}}}")
            else:
                self._field(field, inner, in_oneof=False, message=message)
        for extension in self._group_extensions(message.extension):
            self._extend(extension[0].extendee, extension, inner)
        for extension_range in message.extension_range:
            self.lines.append(
                f"{inner}extensions {_range(extension_range.start, extension_range.end, 1)};"
            )
        for reserved in message.reserved_range:
            self.lines.append(f"{inner}reserved {_range(reserved.start, reserved.end, 1)};")
        for name in message.reserved_name:
            self.lines.append(f'{inner}reserved "{name}";')
        self.lines.append(f"{indent}}}")

    def _field(
        self,
        field: FieldDescriptorProto,
        indent: str,
        *,
        in_oneof: bool,
        message: DescriptorProto | None = None,
    ) -> None:
        kind = SCALARS.get(field.type) or field.type_name
        map_entry = self._map_entry(field, message)
        if map_entry is not None:
            key, value = map_entry
            declaration = f"map<{key}, {value}> {field.name} = {field.number}"
        else:
            label = "" if in_oneof else LABELS[field.label] + " "
            declaration = f"{label}{kind} {field.name} = {field.number}"
        options = []
        if field.HasField("default_value"):
            options.append(f"default = {_default(field)}")
        if field.json_name and field.json_name != _camel(field.name):
            options.append(f'json_name = "{field.json_name}"')
        options += [
            f"{name} = {value}"
            for name, value in self._options("google.protobuf.FieldOptions", field.options)
        ]
        suffix = f" [{', '.join(options)}]" if options else ""
        self.lines.append(f"{indent}{declaration}{suffix};")

    def _map_entry(
        self, field: FieldDescriptorProto, message: DescriptorProto | None
    ) -> tuple[str, str] | None:
        if message is None or field.label != FieldDescriptorProto.LABEL_REPEATED:
            return None
        for nested in message.nested_type:
            if nested.options.map_entry and field.type_name.endswith("." + nested.name):
                key, value = nested.field
                return (
                    SCALARS.get(key.type) or key.type_name,
                    SCALARS.get(value.type) or value.type_name,
                )
        return None

    def _inline_options(self, options_type: str, options: Any) -> str:
        pairs = self._options(options_type, options)
        return f" [{', '.join(f'{n} = {v}' for n, v in pairs)}]" if pairs else ""

    def _options(self, options_type: str, options: Any) -> list[tuple[str, str]]:
        """Each option set in `options` as (name as written in .proto, value)."""
        raw = options.SerializeToString()
        if not raw:
            return []
        cls = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(options_type))
        parsed = cls()
        parsed.ParseFromString(raw)
        pairs: list[tuple[str, str]] = []
        for descriptor, value in parsed.ListFields():
            name = f"({descriptor.full_name})" if descriptor.is_extension else descriptor.name
            if descriptor.is_repeated:
                pairs.extend((name, _value(descriptor, item)) for item in value)
            else:
                pairs.append((name, _value(descriptor, value)))
        return pairs


def _value(descriptor: Any, value: Any) -> str:
    if descriptor.type == descriptor.TYPE_MESSAGE:
        body = text_format.MessageToString(value, as_one_line=True, as_utf8=True)
        return "{" + body + "}"
    if descriptor.type == descriptor.TYPE_ENUM:
        return str(descriptor.enum_type.values_by_number[value].name)
    if descriptor.type == descriptor.TYPE_STRING:
        return _quote(value)
    if descriptor.type == descriptor.TYPE_BOOL:
        return "true" if value else "false"
    return str(value)


def _default(field: FieldDescriptorProto) -> str:
    if field.type in (FieldDescriptorProto.TYPE_STRING, FieldDescriptorProto.TYPE_BYTES):
        return _quote(field.default_value)
    return field.default_value


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _range(start: int, end: int, exclusive: int) -> str:
    last = end - exclusive
    if end >= 536870912 and exclusive:
        return f"{start} to max"
    return str(start) if last == start else f"{start} to {last}"


def _well_known() -> list[Any]:
    from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2

    return [duration_pb2, field_mask_pb2, timestamp_pb2]


def main() -> None:
    file = FileDescriptorProto()
    file.ParseFromString(embedded_descriptor())
    version = _installed_version()
    text = buf_format(Printer(file).render(version))
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            raise SystemExit(
                f"{TARGET.relative_to(ROOT)} is not what protovalidate {version} holds; "
                "run scripts/vendor_validate_proto.py"
            )
        return
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)} from protovalidate {version}")


def buf_format(text: str) -> str:
    """The text as `buf format` writes it, so `make buf-lint` finds nothing to change."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "buf" / "validate" / "validate.proto"
        path.parent.mkdir(parents=True)
        path.write_text(text)
        buf = Path(sys.executable).parent / "buf"
        done = subprocess.run([str(buf), "format", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"buf format failed: {done.stderr}")
        return done.stdout


def _installed_version() -> str:
    from importlib.metadata import version

    return version("protovalidate")


if __name__ == "__main__":
    main()
