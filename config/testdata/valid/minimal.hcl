# Only what is required: every other value takes its default.
node {
  name     = "alpha"
  data_dir = "data/alpha"
}
