# No node block at all.
peer "beta" {
  id = "pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha"
}
