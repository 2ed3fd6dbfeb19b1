package alerts_test

import (
	"context"
	"fmt"
	"time"

	"github.com/fencedhq/fenced/pkg/alerts"
	"github.com/fencedhq/fenced/pkg/clock"
)

// An Alertmanager notification with one mapped alert and one without a
// mapping: the first is held for its host and joins the next tick's
// samples; the second is counted and ignored.
func Example() {
	now := time.Date(2026, 1, 15, 1, 20, 0, 0, time.UTC)
	store, err := alerts.New(alerts.Config{Clock: clock.NewFake(now), Rules: map[string]alerts.Rule{
		"HostCPUStealHigh": {Signal: "cpu_steal_pct", ValueFrom: "annotation:steal_pct"},
	}})
	if err != nil {
		panic(err)
	}
	res, err := store.Receive(context.Background(), []byte(`{"version":"4","status":"firing","alerts":[
		{"status":"firing","labels":{"alertname":"HostCPUStealHigh","host":"cmp-017"},"annotations":{"steal_pct":"31.5"}},
		{"status":"firing","labels":{"alertname":"Watchdog","host":"cmp-017"}}]}`))
	fmt.Println(res.Accepted, res.Ignored, err)
	for _, s := range store.Samples(now, nil) {
		fmt.Println(s.Host, s.Signal, s.Alert.Name, s.Alert.Signal, s.Alert.Value)
	}
	_, err = store.Receive(context.Background(), []byte(`{"version":"4","status":"firing","alerts":[{"status":"firing"}]}`))
	fmt.Println(err)
	// Output:
	// 1 map[unmapped:1] <nil>
	// cmp-017 alert HostCPUStealHigh cpu_steal_pct 31.5
	// alerts: alerts[0].labels: required: the alert's labels (alertname and the host label)
}
