node {
  name       = "alpha"
  data_dir   = "data"
  log_level  = "verbose"
  log_format = "xml"
}
