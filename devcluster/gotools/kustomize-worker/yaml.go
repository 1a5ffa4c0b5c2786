package main

import (
	"bytes"
	"unicode/utf8"

	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/resource"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	yamlv2 "sigs.k8s.io/yaml/goyaml.v2"
)

// yamlOf is what `kustomize build` prints for the built objects (resmap's AsYaml), byte for byte.
//
// The CLI writes each object as YAML text (yaml.v3), reads that into a map, writes the map as JSON, reads
// the JSON with yaml.v2 and writes it again with yaml.v2: the last step sorts the keys and picks the
// styles. Here the object's node is decoded into the map directly and the map written with yaml.v2.
// That is the same map, and yaml.v2 writes the same bytes, whenever the JSON step changes nothing: when
// every value is a string (valid UTF-8), an int, a bool, null, a list or a map with string keys. An
// object holding anything else (a float, which JSON may turn into an int; a map with a non-string key,
// which JSON refuses) is written the CLI's way, and so is every object of a build the CLI would fail.
func yamlOf(built resmap.ResMap) ([]byte, error) {
	var out bytes.Buffer
	for i, res := range built.Resources() {
		text, err := objectYAML(res)
		if err != nil {
			return built.AsYaml() // the CLI's error, in the CLI's words
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(text)
	}
	return out.Bytes(), nil
}

func objectYAML(res *resource.Resource) ([]byte, error) {
	node := res.YNode()
	fields := map[string]interface{}{}
	if node == nil || node.Kind != kyaml.MappingNode || node.Decode(&fields) != nil || !jsonSafe(fields) {
		return res.AsYAML()
	}
	return yamlv2.Marshal(fields)
}

// jsonSafe: the value comes back from JSON as it went in (what yamlOf's shortcut needs).
func jsonSafe(value interface{}) bool {
	switch v := value.(type) {
	case nil, bool, int:
		return true
	case string:
		return utf8.ValidString(v)
	case []interface{}:
		for _, item := range v {
			if !jsonSafe(item) {
				return false
			}
		}
		return v != nil // JSON writes a nil list as null
	case map[string]interface{}:
		for key, item := range v {
			if !utf8.ValidString(key) || !jsonSafe(item) {
				return false
			}
		}
		return v != nil
	}
	return false
}
