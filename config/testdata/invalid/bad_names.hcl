node {
  name     = "my node"
  data_dir = ""
}

peer "" {
  id = "pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha"
}

peer "tab	label" {
  id = "pn1culbogazdinryhi6d4qccirdeqssmjzifevcwlbnfyxtamjsgm2ka55sxm"
}

plugin "../echo" {
  command = "../bin/echo"
  sha256  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

  handle "" {}
}

discovery {
  interfaces = ["eth0", ""]
}
