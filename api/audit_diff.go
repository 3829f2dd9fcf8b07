package api

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// diffMessages lists the fields that differ between two messages of the
// same type, in field order, as dotted paths of .proto field names:
// nested messages by field ("last_seen"), maps by key ("labels.site"),
// lists by index ("pending.0.status"). Well-known types (timestamps,
// durations, wrappers, ...) compare as one value. Before and After are the
// values' protobuf JSON; empty when the field, key or index is absent.
func diffMessages(a, b proto.Message) []*logbookv1.FieldChange {
	var out []*logbookv1.FieldChange
	diffMessage(&out, "", a.ProtoReflect(), b.ProtoReflect())
	return out
}

func diffMessage(out *[]*logbookv1.FieldChange, prefix string, a, b protoreflect.Message) {
	fields := a.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		path := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
			diffMap(out, path, fd, a.Get(fd).Map(), b.Get(fd).Map())
		case fd.IsList():
			diffList(out, path, fd, a.Get(fd).List(), b.Get(fd).List())
		case isComposite(fd):
			// A message absent on one side reads as an empty one there,
			// so each field set on the other side shows.
			ha, hb := a.Has(fd), b.Has(fd)
			if !ha && !hb {
				continue
			}
			before := len(*out)
			diffMessage(out, path+".", a.Get(fd).Message(), b.Get(fd).Message())
			if len(*out) == before && ha != hb { // an empty message set or cleared
				addChange(out, path, fd, a.Get(fd), ha, b.Get(fd), hb)
			}
		default:
			ha, hb := a.Has(fd), b.Has(fd)
			if ha != hb || ha && !equalValues(fd, a.Get(fd), b.Get(fd)) {
				addChange(out, path, fd, a.Get(fd), ha, b.Get(fd), hb)
			}
		}
	}
}

func diffMap(out *[]*logbookv1.FieldChange, path string, fd protoreflect.FieldDescriptor, a, b protoreflect.Map) {
	keys := map[string]protoreflect.MapKey{}
	collect := func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys[k.String()] = k
		return true
	}
	a.Range(collect)
	b.Range(collect)
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	slices.SortFunc(names, func(x, y string) int {
		// Numeric keys in numeric order, others lexically.
		nx, ex := strconv.ParseInt(x, 10, 64)
		ny, ey := strconv.ParseInt(y, 10, 64)
		if ex == nil && ey == nil {
			return cmp.Compare(nx, ny)
		}
		return strings.Compare(x, y)
	})
	vd := fd.MapValue()
	for _, n := range names {
		k := keys[n]
		va, vb := a.Get(k), b.Get(k)
		ha, hb := a.Has(k), b.Has(k)
		p := path + "." + n
		switch {
		case ha && hb && isComposite(vd):
			diffMessage(out, p+".", va.Message(), vb.Message())
		case ha != hb || !equalValues(vd, va, vb):
			addChange(out, p, vd, va, ha, vb, hb)
		}
	}
}

func diffList(out *[]*logbookv1.FieldChange, path string, fd protoreflect.FieldDescriptor, a, b protoreflect.List) {
	for i := range max(a.Len(), b.Len()) {
		p := path + "." + strconv.Itoa(i)
		ha, hb := i < a.Len(), i < b.Len()
		var va, vb protoreflect.Value
		if ha {
			va = a.Get(i)
		}
		if hb {
			vb = b.Get(i)
		}
		switch {
		case ha && hb && isComposite(fd):
			diffMessage(out, p+".", va.Message(), vb.Message())
		case ha != hb || !equalValues(fd, va, vb):
			addChange(out, p, fd, va, ha, vb, hb)
		}
	}
}

// isComposite reports whether fd's values are messages compared field by
// field; well-known types are compared whole.
func isComposite(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.")
}

func equalValues(fd protoreflect.FieldDescriptor, a, b protoreflect.Value) bool {
	if fd.Message() != nil {
		return proto.Equal(a.Message().Interface(), b.Message().Interface())
	}
	return a.Equal(b)
}

func addChange(out *[]*logbookv1.FieldChange, path string, fd protoreflect.FieldDescriptor, a protoreflect.Value, ha bool, b protoreflect.Value, hb bool) {
	c := &logbookv1.FieldChange{Path: path}
	if ha {
		c.Before = valueJSON(fd, a)
	}
	if hb {
		c.After = valueJSON(fd, b)
	}
	*out = append(*out, c)
}

// valueJSON renders one singular value of field fd as protobuf JSON
// would: 64-bit integers as strings, enums by name, bytes in base64.
func valueJSON(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	var x any
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		b, err := stateJSON.Marshal(v.Message().Interface())
		if err != nil {
			return strconv.Quote(err.Error())
		}
		return string(b)
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			x = string(ev.Name())
		} else {
			x = int32(v.Enum())
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		x = strconv.FormatInt(v.Int(), 10)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		x = strconv.FormatUint(v.Uint(), 10)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		switch {
		case math.IsNaN(f):
			x = "NaN"
		case math.IsInf(f, 1):
			x = "Infinity"
		case math.IsInf(f, -1):
			x = "-Infinity"
		default:
			x = f
		}
	default: // bool, string, bytes, 32-bit integers
		x = v.Interface()
	}
	b, err := json.Marshal(x)
	if err != nil {
		return strconv.Quote(fmt.Sprint(x))
	}
	return string(b)
}
