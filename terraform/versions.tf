terraform {
  # 1.5 brings check blocks and the startswith function used below; 2.x may change the language.
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}
