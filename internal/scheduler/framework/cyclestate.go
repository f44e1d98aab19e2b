package framework

// StateKey names a plugin's data in a CycleState.
type StateKey string

// CycleState carries what plugins computed for one pod's scheduling cycle from their
// PreFilter and PreScore to their Filter and Score. It is written only from the
// PreFilter and PreScore points (one goroutine) and read concurrently afterwards.
type CycleState struct {
	data       map[StateKey]any
	skipFilter map[string]bool // plugins whose PreFilter said Skip
	skipScore  map[string]bool // plugins whose PreScore said Skip
	// filters are the Filter plugins to run for this pod (nil: all of them), fixed
	// once PreFilter has run so the per-node loop looks nothing up.
	filters []FilterPlugin
}

// NewCycleState returns an empty CycleState.
func NewCycleState() *CycleState {
	return &CycleState{data: map[StateKey]any{}, skipFilter: map[string]bool{}, skipScore: map[string]bool{}}
}

// Write stores data under key.
func (c *CycleState) Write(key StateKey, data any) { c.data[key] = data }

// Read returns the data stored under key, or nil.
func (c *CycleState) Read(key StateKey) any { return c.data[key] }

// ReadState returns the data stored under key as a T.
func ReadState[T any](c *CycleState, key StateKey) (T, bool) {
	v, ok := c.data[key].(T)
	return v, ok
}
