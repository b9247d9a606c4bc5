"""The Sparkplug B payload schema written for the tests, independently of the product's: the specification's
``sparkplug_b.proto`` (Sparkplug 3.0.0, chapter 6) transcribed as the FileDescriptorProto that ``protoc`` would
make of it, in protobuf text format, and loaded with the protobuf library. Test payloads are built with it."""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_SCHEMA = """
name: "test/sparkplug_b.proto"
package: "test.tahu"
syntax: "proto2"
message_type {
  name: "Payload"
  field { name: "timestamp" number: 1 label: LABEL_OPTIONAL type: TYPE_UINT64 }
  field { name: "metrics" number: 2 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".test.tahu.Payload.Metric" }
  field { name: "seq" number: 3 label: LABEL_OPTIONAL type: TYPE_UINT64 }
  field { name: "uuid" number: 4 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "body" number: 5 label: LABEL_OPTIONAL type: TYPE_BYTES }
  nested_type {
    name: "Template"
    field { name: "version" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "metrics" number: 2 label: LABEL_REPEATED type: TYPE_MESSAGE
            type_name: ".test.tahu.Payload.Metric" }
    field { name: "parameters" number: 3 label: LABEL_REPEATED type: TYPE_MESSAGE
            type_name: ".test.tahu.Payload.Template.Parameter" }
    field { name: "template_ref" number: 4 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "is_definition" number: 5 label: LABEL_OPTIONAL type: TYPE_BOOL }
    nested_type {
      name: "Parameter"
      field { name: "name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
      field { name: "type" number: 2 label: LABEL_OPTIONAL type: TYPE_UINT32 }
      field { name: "int_value" number: 3 label: LABEL_OPTIONAL type: TYPE_UINT32 oneof_index: 0 }
      field { name: "long_value" number: 4 label: LABEL_OPTIONAL type: TYPE_UINT64 oneof_index: 0 }
      field { name: "float_value" number: 5 label: LABEL_OPTIONAL type: TYPE_FLOAT oneof_index: 0 }
      field { name: "double_value" number: 6 label: LABEL_OPTIONAL type: TYPE_DOUBLE oneof_index: 0 }
      field { name: "boolean_value" number: 7 label: LABEL_OPTIONAL type: TYPE_BOOL oneof_index: 0 }
      field { name: "string_value" number: 8 label: LABEL_OPTIONAL type: TYPE_STRING oneof_index: 0 }
      oneof_decl { name: "value" }
    }
  }
  nested_type {
    name: "DataSet"
    field { name: "num_of_columns" number: 1 label: LABEL_OPTIONAL type: TYPE_UINT64 }
    field { name: "columns" number: 2 label: LABEL_REPEATED type: TYPE_STRING }
    field { name: "types" number: 3 label: LABEL_REPEATED type: TYPE_UINT32 }
    field { name: "rows" number: 4 label: LABEL_REPEATED type: TYPE_MESSAGE
            type_name: ".test.tahu.Payload.DataSet.Row" }
    nested_type {
      name: "DataSetValue"
      field { name: "int_value" number: 1 label: LABEL_OPTIONAL type: TYPE_UINT32 oneof_index: 0 }
      field { name: "long_value" number: 2 label: LABEL_OPTIONAL type: TYPE_UINT64 oneof_index: 0 }
      field { name: "float_value" number: 3 label: LABEL_OPTIONAL type: TYPE_FLOAT oneof_index: 0 }
      field { name: "double_value" number: 4 label: LABEL_OPTIONAL type: TYPE_DOUBLE oneof_index: 0 }
      field { name: "boolean_value" number: 5 label: LABEL_OPTIONAL type: TYPE_BOOL oneof_index: 0 }
      field { name: "string_value" number: 6 label: LABEL_OPTIONAL type: TYPE_STRING oneof_index: 0 }
      oneof_decl { name: "value" }
    }
    nested_type {
      name: "Row"
      field { name: "elements" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
              type_name: ".test.tahu.Payload.DataSet.DataSetValue" }
    }
  }
  nested_type {
    name: "PropertyValue"
    field { name: "type" number: 1 label: LABEL_OPTIONAL type: TYPE_UINT32 }
    field { name: "is_null" number: 2 label: LABEL_OPTIONAL type: TYPE_BOOL }
    field { name: "int_value" number: 3 label: LABEL_OPTIONAL type: TYPE_UINT32 oneof_index: 0 }
    field { name: "long_value" number: 4 label: LABEL_OPTIONAL type: TYPE_UINT64 oneof_index: 0 }
    field { name: "float_value" number: 5 label: LABEL_OPTIONAL type: TYPE_FLOAT oneof_index: 0 }
    field { name: "double_value" number: 6 label: LABEL_OPTIONAL type: TYPE_DOUBLE oneof_index: 0 }
    field { name: "boolean_value" number: 7 label: LABEL_OPTIONAL type: TYPE_BOOL oneof_index: 0 }
    field { name: "string_value" number: 8 label: LABEL_OPTIONAL type: TYPE_STRING oneof_index: 0 }
    field { name: "propertyset_value" number: 9 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".test.tahu.Payload.PropertySet" oneof_index: 0 }
    field { name: "propertysets_value" number: 10 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".test.tahu.Payload.PropertySetList" oneof_index: 0 }
    oneof_decl { name: "value" }
  }
  nested_type {
    name: "PropertySet"
    field { name: "keys" number: 1 label: LABEL_REPEATED type: TYPE_STRING }
    field { name: "values" number: 2 label: LABEL_REPEATED type: TYPE_MESSAGE
            type_name: ".test.tahu.Payload.PropertyValue" }
  }
  nested_type {
    name: "PropertySetList"
    field { name: "propertyset" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
            type_name: ".test.tahu.Payload.PropertySet" }
  }
  nested_type {
    name: "MetaData"
    field { name: "is_multi_part" number: 1 label: LABEL_OPTIONAL type: TYPE_BOOL }
    field { name: "content_type" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "size" number: 3 label: LABEL_OPTIONAL type: TYPE_UINT64 }
    field { name: "seq" number: 4 label: LABEL_OPTIONAL type: TYPE_UINT64 }
    field { name: "file_name" number: 5 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "file_type" number: 6 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "md5" number: 7 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "description" number: 8 label: LABEL_OPTIONAL type: TYPE_STRING }
  }
  nested_type {
    name: "Metric"
    field { name: "name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "alias" number: 2 label: LABEL_OPTIONAL type: TYPE_UINT64 }
    field { name: "timestamp" number: 3 label: LABEL_OPTIONAL type: TYPE_UINT64 }
    field { name: "datatype" number: 4 label: LABEL_OPTIONAL type: TYPE_UINT32 }
    field { name: "is_historical" number: 5 label: LABEL_OPTIONAL type: TYPE_BOOL }
    field { name: "is_transient" number: 6 label: LABEL_OPTIONAL type: TYPE_BOOL }
    field { name: "is_null" number: 7 label: LABEL_OPTIONAL type: TYPE_BOOL }
    field { name: "metadata" number: 8 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".test.tahu.Payload.MetaData" }
    field { name: "properties" number: 9 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".test.tahu.Payload.PropertySet" }
    field { name: "int_value" number: 10 label: LABEL_OPTIONAL type: TYPE_UINT32 oneof_index: 0 }
    field { name: "long_value" number: 11 label: LABEL_OPTIONAL type: TYPE_UINT64 oneof_index: 0 }
    field { name: "float_value" number: 12 label: LABEL_OPTIONAL type: TYPE_FLOAT oneof_index: 0 }
    field { name: "double_value" number: 13 label: LABEL_OPTIONAL type: TYPE_DOUBLE oneof_index: 0 }
    field { name: "boolean_value" number: 14 label: LABEL_OPTIONAL type: TYPE_BOOL oneof_index: 0 }
    field { name: "string_value" number: 15 label: LABEL_OPTIONAL type: TYPE_STRING oneof_index: 0 }
    field { name: "bytes_value" number: 16 label: LABEL_OPTIONAL type: TYPE_BYTES oneof_index: 0 }
    field { name: "dataset_value" number: 17 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".test.tahu.Payload.DataSet" oneof_index: 0 }
    field { name: "template_value" number: 18 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".test.tahu.Payload.Template" oneof_index: 0 }
    oneof_decl { name: "value" }
  }
}
"""

#: The DataType enum values the tests use (Sparkplug 3.0.0, 6.4.16).
INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64 = range(1, 9)
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT, UUID, DATASET, BYTES, FILE, TEMPLATE = range(9, 20)
INT32_ARRAY, FLOAT_ARRAY, BOOLEAN_ARRAY, STRING_ARRAY = 24, 30, 32, 33


@cache
def Payload() -> Any:  # named as the message class it returns
    pool = descriptor_pool.DescriptorPool()
    pool.Add(text_format.Parse(_SCHEMA, descriptor_pb2.FileDescriptorProto()))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("test.tahu.Payload"))
