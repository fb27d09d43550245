node {
  name     = "alpha"
  data_dir = "data"
}

peer "beta" {
  id = "pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha"
}

peer "beta" {
  id = "pn1culbogazdinryhi6d4qccirdeqssmjzifevcwlbnfyxtamjsgm2ka55sxm"
}

peer "beta-again" {
  id = "pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha"
}
