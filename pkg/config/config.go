// Package config reads promocodes' configuration: built-in defaults, then a
// YAML file, then PROMOCODES_<SECTION>_<KEY> environment variables, then
// explicit overrides (flags). It is the only package that imports viper;
// everything else receives a plain app.Config. It keeps no global state.
package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/promocodes/promocodes/pkg/app"
)

// EnvPrefix is the prefix of configuration environment variables:
// kafka.brokers is PROMOCODES_KAFKA_BROKERS (lists comma-separated).
const EnvPrefix = "PROMOCODES"

// Load builds the configuration from defaults, file (skipped when ""), the
// environment and overrides (config key → value, e.g. "http.addr"). Unknown
// keys in the file are errors, so a typo does not silently fall back to a
// default. Load does not validate: call Validate (or ValidateFor) on the
// result with what the command needs.
func Load(defaults app.Config, file string, overrides map[string]string) (app.Config, error) {
	v := viper.New()
	setDefaults(v, "", reflect.ValueOf(defaults))
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return app.Config{}, fmt.Errorf("read config %s: %w", file, err)
		}
	}
	for key, val := range overrides {
		v.Set(key, val)
	}
	var cfg app.Config
	err := v.UnmarshalExact(&cfg, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		return app.Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// setDefaults registers every key of the Config struct with viper, so that
// environment variables can override keys the config file does not mention.
func setDefaults(v *viper.Viper, prefix string, val reflect.Value) {
	t := val.Type()
	for i := 0; i < t.NumField(); i++ {
		key := t.Field(i).Tag.Get("mapstructure")
		if key == "" {
			continue
		}
		if prefix != "" {
			key = prefix + "." + key
		}
		if f := val.Field(i); f.Kind() == reflect.Struct {
			setDefaults(v, key, f)
		} else {
			v.SetDefault(key, f.Interface())
		}
	}
}
