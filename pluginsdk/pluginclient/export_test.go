package pluginclient

// The output limits, for the flood test.
const (
	OutputBurst           = outputBurst
	OutputRate            = outputRate
	MaxOutputLine         = maxOutputLine
	OutputSummaryInterval = outputSummaryInterval
)
