def test_imp():
    from tests.zennit_import import import_zennit
    assert import_zennit()
