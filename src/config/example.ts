/**
 * The example configuration that `teleport-email configure` prints. It follows the Go plugin's
 * example (same sections, keys and comments) with three differences: it loads (only one mailer is
 * active, the other is commented out), it lists every key including our extensions, and secrets
 * come from files. `start -c` on it fails only because the placeholder identity and password files
 * do not exist.
 */

/** Placeholder paths used in {@link EXAMPLE_CONFIG}; tests substitute real files for them. */
export const EXAMPLE_PATHS = {
  identity: "/var/lib/teleport/plugins/email/auth_id",
  smtpPasswordFile: "/var/lib/teleport/plugins/email/smtp_password",
  mailgunPrivateKeyFile: "/var/lib/teleport/plugins/email/mailgun_private_key",
} as const;

/** The text `teleport-email configure` prints (ends with a newline). */
export const EXAMPLE_CONFIG = `# Example email plugin configuration TOML file

[teleport]
# Teleport Auth Service GRPC API address, or Proxy Service address (host:port).
addr = "teleport.example.com:443"

# When using --format=file:
# tctl auth sign --format=file --user=access-plugin --out=auth_id --ttl=720h
identity = "${EXAMPLE_PATHS.identity}" # Identity file
refresh_identity = true                # Reload the identity file when it changes on disk (tbot)
# refresh_identity_interval = "1m"     # How often to reload it (Go duration: "30s", "5m", "1h")

# When using --format=tls (instead of identity):
# tctl auth sign --format=tls --user=access-plugin --out=auth --ttl=720h
# client_key = "/var/lib/teleport/plugins/email/auth.key" # Teleport GRPC client secret key
# client_crt = "/var/lib/teleport/plugins/email/auth.crt" # Teleport GRPC client certificate
# root_cas = "/var/lib/teleport/plugins/email/auth.cas"   # Teleport cluster CA certs

# Configure exactly one of [smtp] and [mailgun].

[smtp]
host = "smtp.gmail.com"
port = 587                    # 465 means implicit TLS (SMTPS)
username = "username@gmail.com"
# password = ""               # Or inline (prefer password_file)
password_file = "${EXAMPLE_PATHS.smtpPasswordFile}"
starttls_policy = "mandatory" # mandatory|opportunistic|disabled
# ca_file = "/etc/ssl/certs/smtp-ca.pem" # Extra CA certificates (PEM) trusted for the SMTP server
# local_name = "mail-sender.example.com" # EHLO name and Message-ID domain (default: the host's FQDN, else the sender's domain)

# [mailgun]
# domain = "your-domain-name"
# private_key = "xoxb-11xx"   # Or inline (prefer private_key_file)
# private_key_file = "${EXAMPLE_PATHS.mailgunPrivateKeyFile}"
# region = "us"               # Mailgun region: us|eu (default us)
# api_base = "https://api.eu.mailgun.net/v3" # Or the API base URL itself (not with region)

[delivery]
sender = "Teleport <noreply@example.com>" # From: email address, with an optional display name
# notify_requester = false                # Also email the requester when their user name is an address

[role_to_recipients]
# All requests to 'dev' role will be sent to this address
"dev" = "dev-manager@example.com"
# These recipients will receive review requests not handled by the roles above
"*" = ["root@example.com", "admin@example.com"]

[log]
output = "stderr" # Could be "stdout", "stderr" or "/var/lib/teleport/email.log"
severity = "INFO" # Could be "INFO", "ERROR", "DEBUG" or "WARN".
# format = "text" # Could be "text" or "json"
`;
