use super::Tx;
pub async fn refresh_search_keys(_tx: &mut Tx, _o: bool) -> crate::error::Result<()> { Ok(()) }
