package main

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/promocodes/promocodes/pkg/app"
)

// devSecret is the code key of `promocodes dev` when none is configured. It
// is public, so codes made with it are guessable: dev only.
const devSecret = "promocodes-dev-secret-do-not-use-in-production"

// devDefaults are the defaults of `promocodes dev`: everything embedded.
func devDefaults() app.Config {
	c := app.Defaults()
	c.Env = "dev"
	c.Log = app.LogConfig{Level: "info", Format: "console"}
	c.HTTP.Addr = "127.0.0.1:8080"
	c.DB = app.DBConfig{Driver: "sqlite", MaxConns: 4}
	c.Codes.Secret = devSecret
	c.Shovel.Interval = 30 * time.Second
	return c
}

// configFlags adds the flags every service command shares.
func configFlags(cmd *cobra.Command) {
	cmd.Flags().String("config", "", "config file (YAML); env PROMOCODES_CONFIG")
	cmd.Flags().String("http-addr", "", "listen address for HTTP (http.addr)")
}

// loadConfig reads defaults, then the config file, then PROMOCODES_* env,
// then flags. Unknown keys in the file are errors,
// so a typo does not silently fall back to a default.
func loadConfig(cmd *cobra.Command, defaults app.Config) (app.Config, error) {
	v := viper.New()
	setDefaults(v, "", reflect.ValueOf(defaults))
	v.SetEnvPrefix("PROMOCODES")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	file, _ := cmd.Flags().GetString("config")
	if file == "" {
		file = os.Getenv("PROMOCODES_CONFIG")
	}
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return app.Config{}, fmt.Errorf("read config %s: %w", file, err)
		}
	}
	for flag, key := range map[string]string{"http-addr": "http.addr", "data-dir": "dev.dataDir", "listen": "kafka.brokers"} {
		if f := cmd.Flags().Lookup(flag); f != nil && f.Changed {
			v.Set(key, f.Value.String())
		}
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
		f := t.Field(i)
		key := f.Tag.Get("mapstructure")
		if key == "" {
			continue
		}
		if prefix != "" {
			key = prefix + "." + key
		}
		fv := val.Field(i)
		if fv.Kind() == reflect.Struct {
			setDefaults(v, key, fv)
			continue
		}
		v.SetDefault(key, fv.Interface())
	}
}

// newLogger builds the process logger: JSON in production, console in dev.
func newLogger(c app.LogConfig) (*zap.Logger, error) {
	var zc zap.Config
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		zc.DisableStacktrace = true
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "time"
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	}
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	return zc.Build()
}
