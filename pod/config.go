//go:build linux

package pod

import (
	"fmt"
	"unicode/utf8"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/encoding/protowire"
)

// podSandboxConfigURL is the type URL of CRI's PodSandboxConfig as containerd's CRI plugin sends
// it (typeurl names protobuf messages by their full name).
const podSandboxConfigURL = "runtime.v1.PodSandboxConfig"

// DecodeConfig decodes CreateSandboxRequest.options: CRI's PodSandboxConfig, type URL
// "runtime.v1.PodSandboxConfig" (also accepted with the "type.googleapis.com/" prefix), in the
// protobuf wire format. Empty typeURL and value give a zero Config. Another type URL, or bytes
// that do not parse, are InvalidArgument. Fields the shim does not use are skipped.
//
// The message is decoded with protowire instead of k8s.io/cri-api's generated types: those would
// link, and initialise at start-up, CRI's whole API in a shim that must stay small at idle.
func DecodeConfig(typeURL string, value []byte) (*Config, error) {
	switch typeURL {
	case "":
		if len(value) == 0 {
			return &Config{}, nil
		}
		return nil, fmt.Errorf("options of %d bytes without a type URL: %w", len(value), errdefs.ErrInvalidArgument)
	case podSandboxConfigURL, "type.googleapis.com/" + podSandboxConfigURL:
	default:
		return nil, fmt.Errorf("options of type %q, want %s: %w", typeURL, podSandboxConfigURL, errdefs.ErrInvalidArgument)
	}
	var c Config
	if err := decodePodSandboxConfig(value, &c); err != nil {
		return nil, fmt.Errorf("decode %s: %v: %w", podSandboxConfigURL, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain (process/doc.go)
	}
	return &c, nil
}

// field is one field of a protobuf message: for the varint wire type its value is v, for the
// bytes wire type (strings, messages, map entries) b.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// str returns the field as a proto3 string (valid UTF-8).
func (f field) str() (string, error) {
	if err := f.want(protowire.BytesType); err != nil {
		return "", err
	}
	if !utf8.Valid(f.b) {
		return "", fmt.Errorf("field %d: string is not valid UTF-8", f.num)
	}
	return string(f.b), nil
}

// mode returns the field as a NamespaceMode (an enum: an int32 varint).
func (f field) mode() (NamespaceMode, error) {
	if err := f.want(protowire.VarintType); err != nil {
		return 0, err
	}
	return NamespaceMode(int32(f.v)), nil
}

// want checks the field's wire type.
func (f field) want(t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("field %d has wire type %d, want %d", f.num, f.typ, t)
	}
	return nil
}

// eachField calls fn for each field of the message b, in order; fields of other wire types
// (fixed32, fixed64, groups) are skipped after they parse, since no field the shim reads has them.
func eachField(b []byte, fn func(field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// message returns fn as a decoder of the embedded message in a field.
func message(f field, fn func(field) error) error {
	if err := f.want(protowire.BytesType); err != nil {
		return err
	}
	return eachField(f.b, fn)
}

// decodePodSandboxConfig: metadata = 1, hostname = 2, dns_config = 4, linux = 8 (api.proto).
func decodePodSandboxConfig(b []byte, c *Config) error {
	return eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = message(f, c.metadataField)
		case 2:
			c.Hostname, err = f.str()
		case 4:
			if c.DNS == nil {
				c.DNS = &DNSConfig{}
			}
			err = message(f, c.DNS.field)
		case 8:
			err = message(f, c.linuxField)
		}
		return err
	})
}

// metadataField decodes PodSandboxMetadata: name = 1, uid = 2, namespace = 3.
func (c *Config) metadataField(f field) error {
	var err error
	switch f.num {
	case 1:
		c.Name, err = f.str()
	case 2:
		c.UID, err = f.str()
	case 3:
		c.Namespace, err = f.str()
	}
	return err
}

// field decodes DNSConfig: servers = 1, searches = 2, options = 3 (repeated strings).
func (d *DNSConfig) field(f field) error {
	var list *[]string
	switch f.num {
	case 1:
		list = &d.Servers
	case 2:
		list = &d.Searches
	case 3:
		list = &d.Options
	default:
		return nil
	}
	s, err := f.str()
	*list = append(*list, s)
	return err
}

// linuxField decodes LinuxPodSandboxConfig: cgroup_parent = 1, security_context = 2,
// sysctls = 3 (a map<string, string>: entries with key = 1, value = 2).
func (c *Config) linuxField(f field) error {
	switch f.num {
	case 1:
		var err error
		c.CgroupParent, err = f.str()
		return err
	case 2:
		return message(f, c.securityContextField)
	case 3:
		k, v, err := mapEntry(f)
		if err != nil {
			return err
		}
		if c.Sysctls == nil {
			c.Sysctls = map[string]string{}
		}
		c.Sysctls[k] = v
	}
	return nil
}

// securityContextField decodes LinuxSandboxSecurityContext: namespace_options = 1.
func (c *Config) securityContextField(f field) error {
	if f.num == 1 {
		return message(f, c.namespaceOptionField)
	}
	return nil
}

// namespaceOptionField decodes NamespaceOption: network = 1, pid = 2, ipc = 3, userns_options = 5
// (UserNamespace: mode = 1, uids = 2, gids = 3: repeated IDMapping).
func (c *Config) namespaceOptionField(f field) error {
	var err error
	switch f.num {
	case 1:
		c.Network, err = f.mode()
	case 2:
		c.PID, err = f.mode()
	case 3:
		c.IPC, err = f.mode()
	case 5:
		c.HasUserns = true
		err = message(f, func(f field) error {
			var err error
			switch f.num {
			case 1:
				c.Userns, err = f.mode()
			case 2, 3:
				var m IDMap
				if err = message(f, m.field); err == nil && f.num == 2 {
					c.UIDs = append(c.UIDs, m)
				} else if err == nil {
					c.GIDs = append(c.GIDs, m)
				}
			}
			return err
		})
	}
	return err
}

// field decodes IDMapping: host_id = 1, container_id = 2, length = 3 (uint32 varints).
func (m *IDMap) field(f field) error {
	if f.num < 1 || f.num > 3 {
		return nil
	}
	if err := f.want(protowire.VarintType); err != nil {
		return err
	}
	if f.v > 0xffffffff {
		return fmt.Errorf("field %d: %d does not fit a uint32", f.num, f.v)
	}
	switch v := uint32(f.v); f.num {
	case 1:
		m.HostID = v
	case 2:
		m.ContainerID = v
	case 3:
		m.Length = v
	}
	return nil
}

// mapEntry decodes an entry of a map<string, string>: key = 1, value = 2.
func mapEntry(f field) (key, value string, err error) {
	err = message(f, func(f field) error {
		var err error
		switch f.num {
		case 1:
			key, err = f.str()
		case 2:
			value, err = f.str()
		}
		return err
	})
	return key, value, err
}
