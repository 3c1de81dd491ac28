//! One newtype per kind of id, so a customer id can never be passed where a request id goes.

macro_rules! id_type {
    ($($name:ident),* $(,)?) => {$(
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                i64::schema()
            }
        }
        impl utoipa::ToSchema for $name {}
    )*};
}

id_type!(
    UserId, CustomerId, ObjectId, ProjectId, RequestId, ReportId, CommentId
);
