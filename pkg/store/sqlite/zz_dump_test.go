package sqlite

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

func TestZZDump(t *testing.T) {
	m := map[string]string{}
	v := reflect.ValueOf(statements)
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if f.Type.Kind() == reflect.String {
			m[f.Name] = v.Field(i).String()
		}
	}
	for k, s := range statements.Purge {
		m["Purge."+k] = s
	}
	b, _ := json.MarshalIndent(m, "", " ")
	os.WriteFile("/tmp/shrink19/sqlite.json", b, 0o644)
}
