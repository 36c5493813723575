//! SalesActor: placeholder while issue 13 is built (the handlers answer `Gone`).

use actix::prelude::*;

use super::*;

/// The sales actor.
pub struct SalesActor {}

impl Actor for SalesActor {
    type Context = Context<Self>;
}

macro_rules! placeholder {
    ($($msg:ty => $out:ty),*) => {$(
        impl Handler<$msg> for SalesActor {
            type Result = Result<$out, SalesError>;
            fn handle(&mut self, _: $msg, _: &mut Self::Context) -> Self::Result {
                Err(SalesError::Gone)
            }
        }
    )*};
}

placeholder!(
    CreateAvailability => Availability,
    UpdateAvailability => (),
    ListAvailabilities => Vec<Availability>,
    ListReservations => Vec<Reservation>,
    ListActiveSlots => Vec<ActiveSlot>,
    GetSlotAgent => Option<SlotAgentInfo>
);
