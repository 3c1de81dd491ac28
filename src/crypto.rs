//! Encryption of personal data at rest (filled in by the crypto work).
