node {
  name     = "alpha"
  data_dir = "data"
  listen   = "4040"
}

peer "noport" {
  id      = "pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha"
  address = "127.0.0.1"
}

peer "nohost" {
  id      = "pn1culbogazdinryhi6d4qccirdeqssmjzifevcwlbnfyxtamjsgm2ka55sxm"
  address = ":4040"
}

peer "badport" {
  id      = "pn1dqor4hzaeercgjbfeytsqkjkfmwc2lrpgaytemzugu3doobzhi5v7k2zlu"
  address = "host.example:http"
}

telemetry {
  metrics_listen = "127.0.0.1:0"
}
